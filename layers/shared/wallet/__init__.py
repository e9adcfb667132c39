"""Prepaid credits: a balance per user, topped up exactly once per paid Stripe Checkout Session."""
