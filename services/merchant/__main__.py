"""`python -m services.merchant`: run the merchant service until SIGTERM or Ctrl-C."""

from .app import main

main()
