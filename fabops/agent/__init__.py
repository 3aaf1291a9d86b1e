"""`fabops agent`: one background process per user that keeps fabops'
imports warm and its SSH transports open, so a command from a laptop is
one round trip (docs/architecture.md, "The agent").

- client.py: what the `fabops` command does first (standard library only);
- server.py: the agent (the listener, the single-threaded forker, a run);
- relay.py: the warm transports and the channels relayed over them;
- proxy.py: a run's side of a relayed channel, as paramiko's Channel;
- wire.py: the frames on the socket.
"""
