"""The replay stream of a web session: decoded DOM messages made safe and ready to play."""
