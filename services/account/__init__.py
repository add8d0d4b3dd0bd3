"""The account service: wallets, settlement accounts and the double-entry ledger."""
