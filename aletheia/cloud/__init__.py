"""Google Cloud underneath everything.

Settings, clients, every Firestore path and query, auth and membership.
"""
