"""The auth service: sign-up, login, tokens and the keys that verify them."""
