"""Training and evaluation of the gateway's models: needs the ``train`` extra, never a gateway."""
