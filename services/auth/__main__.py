"""`python -m services.auth`: run the auth service until SIGTERM or Ctrl-C."""

from .app import main

main()
