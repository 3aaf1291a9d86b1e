"""`python -m fabops.agent`: the agent process (server.py), as the client starts it."""
from .server import main

main()
