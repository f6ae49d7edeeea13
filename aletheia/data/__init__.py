"""Content-addressed data.

Hashing, the local cache, blobs, versioned datasets, artifacts and their references.
"""
