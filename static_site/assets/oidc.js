// OpenID Connect sign-in: authorization code flow with PKCE (S256); state and nonce are checked on return.
import { requestJson } from "./api.js";
import { claimsOf } from "./jwt.js";

const PENDING_KEY = "credits.oidc";

/** A failure whose message is written for people. */
export class SignInError extends Error {
  name = "SignInError";
}

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const randomToken = (size) => base64url(crypto.getRandomValues(new Uint8Array(size)));

export async function beginSignIn(settings, returnTo) {
  const verifier = randomToken(32);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const pending = { verifier, state: randomToken(16), nonce: randomToken(16), returnTo };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(settings.authorizeUrl);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: settings.clientId,
    redirect_uri: settings.redirectUri,
    scope: (settings.scopes ?? ["openid"]).join(" "),
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  window.location.assign(url.toString());
}

/** The provider's redirect back: `{token, name, expiresAt, returnTo}`, or null when this is not one. */
export async function completeSignIn(settings) {
  const params = new URLSearchParams(window.location.search);
  if (!params.has("code") && !params.has("error")) return null;
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "null");
  } catch {
    pending = null;
  }
  sessionStorage.removeItem(PENDING_KEY);
  // Drop the code from the address bar and history whatever happens next: it is single-use.
  window.history.replaceState(null, "", window.location.pathname);
  if (!pending || params.get("state") !== pending.state) {
    throw new SignInError("That sign-in did not start in this tab. Sign in again.");
  }
  if (params.has("error")) {
    throw new SignInError(
      params.get("error") === "access_denied" ? "Sign-in was cancelled." : "Sign-in failed. Try again.",
    );
  }
  const tokens = await requestJson(settings.tokenUrl, {
    method: "POST",
    form: {
      grant_type: "authorization_code",
      client_id: settings.clientId,
      code: params.get("code"),
      redirect_uri: settings.redirectUri,
      code_verifier: pending.verifier,
    },
  });
  const claims = claimsOf(tokens.id_token);
  const audiences = [claims?.aud].flat();
  const valid =
    claims?.iss === settings.issuer &&
    audiences.includes(settings.clientId) &&
    claims?.nonce === pending.nonce;
  if (!valid) throw new SignInError("The sign-in response could not be verified. Sign in again.");
  return {
    token: tokens.id_token,
    name: claims.email ?? claims.sub,
    expiresAt: claims.exp,
    returnTo: pending.returnTo,
  };
}

/**
 * Where to end the provider's session, or null when it has no logout address (the page still signs out).
 * Cognito's /logout takes client_id and logout_uri; any other provider's end_session_endpoint takes
 * OpenID Connect RP-initiated logout's post_logout_redirect_uri, with the ID token as a hint.
 */
export function logoutUrl(settings, idToken) {
  if (!settings.logoutUrl) return null;
  let url;
  try {
    url = new URL(settings.logoutUrl);
  } catch {
    return null;
  }
  url.searchParams.set("client_id", settings.clientId);
  if (settings.logout === "oidc") {
    url.searchParams.set("post_logout_redirect_uri", settings.redirectUri);
    if (idToken) url.searchParams.set("id_token_hint", idToken);
  } else {
    url.searchParams.set("logout_uri", settings.redirectUri);
  }
  return url.toString();
}
