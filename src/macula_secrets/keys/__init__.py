"""Keys: age recipients and identities, Shamir shares.

Recipients (public keys) encrypt; identities (private keys) decrypt. This
package does no network or terminal I/O except where a key source says so
(``SOPS_AGE_KEY_CMD`` runs a command, a passphrase-protected identity asks
on the terminal).
"""
