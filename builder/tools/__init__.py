"""Maintainer commands: reference docs, runtime lock, engine flag import."""
