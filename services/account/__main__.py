"""`python -m services.account`: run the account service until SIGTERM or Ctrl-C."""

from .app import main

main()
