"""Cryptography: tokens, passwords, secrets. Only tokens.py touches the JOSE library."""
