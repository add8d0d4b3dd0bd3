"""`python -m services.edge`: the REST edge."""

from .app import main

main()
