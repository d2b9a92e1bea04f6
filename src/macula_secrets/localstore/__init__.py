"""The node's encrypted runtime store (internal; the public face is ``Secrets``).

``barrier`` encrypts (envelope encryption, associated data binding each
ciphertext to its place); ``sqlite`` stores ciphertext and never sees a key;
``store`` puts them together with versions, caching and master key rotation.
"""
