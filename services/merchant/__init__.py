"""The merchant service: merchants, their payments and their API keys."""
