"""Integrations with other tools' APIs."""
