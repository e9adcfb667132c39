// Who is signed in: one bearer token per browser tab, kept in sessionStorage and never in a cookie.
import { ApiError, requestJson } from "./api.js";
import { claimsOf } from "./jwt.js";

const SESSION_KEY = "credits.session";
// A token this close to expiry counts as ended, so no request leaves with one about to lapse.
const EXPIRY_MARGIN_SECONDS = 30;

export function createAuth(settings) {
  const mode = settings?.mode === "oidc" ? "oidc" : "local";
  const oidc = () => import("./oidc.js");

  const save = (session) => sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  const clear = () => sessionStorage.removeItem(SESSION_KEY);

  const stored = () => {
    try {
      return JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    } catch {
      return null;
    }
  };

  return {
    mode,

    /** `{session, ended}`: the live session {token, name} or null; `ended` when one had expired. */
    current() {
      const session = stored();
      if (!session || typeof session.token !== "string") {
        clear();
        return { session: null, ended: false };
      }
      if (session.expiresAt && Date.now() / 1000 > session.expiresAt - EXPIRY_MARGIN_SECONDS) {
        clear();
        return { session: null, ended: true };
      }
      return { session, ended: false };
    },

    token() {
      return this.current().session?.token ?? null;
    },

    /** Local development sign-in: the dev stack issues a token for any valid user name. */
    async signInLocal(userId) {
      const data = await requestJson(settings.tokenUrl, { method: "POST", json: { userId } });
      const claims = claimsOf(data.token);
      if (!claims) {
        throw new ApiError("The sign-in service sent an answer this page could not read.", {
          kind: "unreadable",
        });
      }
      save({ token: data.token, name: data.userId ?? claims.sub, expiresAt: claims.exp ?? null });
    },

    /** OpenID Connect: leaves for the identity provider; `returnTo` is where to land afterwards. */
    async beginSignIn(returnTo) {
      await (await oidc()).beginSignIn(settings, returnTo);
    },

    /** OpenID Connect, on the way back: finish signing in; the path to return to, or null. */
    async completeSignIn() {
      if (mode !== "oidc") return null;
      const result = await (await oidc()).completeSignIn(settings);
      if (!result) return null;
      save({ token: result.token, name: result.name, expiresAt: result.expiresAt });
      return result.returnTo;
    },

    /**
     * Forgets the token first, whatever follows; for OpenID Connect, the address that ends the provider's
     * session, or null when there is none or it cannot be built.
     */
    async signOut() {
      const idToken = stored()?.token ?? null;
      clear();
      if (mode !== "oidc") return null;
      try {
        return (await oidc()).logoutUrl(settings, idToken);
      } catch {
        return null;
      }
    },

    forget: clear,
  };
}
