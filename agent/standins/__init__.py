"""Local stand-ins for AgentAPI and the Coder server.

They exist so people can try the daemon on one machine and so the tests have realistic peers
on real loopback sockets. Nothing in the daemon imports this package.
"""
