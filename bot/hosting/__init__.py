"""Hosted mode: one deployment for many communities, each set up inside Discord with /setup.

- `models`: what a community and a linked guild hold (the registry's rows, as values);
- `secrets`: the master keys, and the API keys sealed at rest (`SecretBox`);
- `registry`: the hosted deployment's own state (communities, linked guilds, encrypted keys);
- `host`: builds, rebuilds and removes the communities the registry holds, for the bot.
"""
