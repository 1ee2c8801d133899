"""Partner vendors: features delegated to another company's service.

The pieces, each usable alone: ``config`` (who the vendors are), ``protocol`` (the JSON both
sides speak, documented in docs/vendor-protocol.md), ``client`` (dispatch and poll, with
retries), ``signatures`` (Standard Webhooks sign/verify for callbacks), ``results`` (fetching a
vendor's result safely) and ``sandbox`` (a vendor of our own for tests, development and demos).
"""
