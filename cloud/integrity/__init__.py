"""Integrity in the cloud: storage and delivery around the decisions of issue 17.

The decisions (``decisions.reconciliation``, ``decisions.shipments``) are pure; this package
reads their facts from PostgreSQL, stores what they conclude, appends shipment verdicts to the
evidence ledger and raises ``integrity.*`` alerts through ``cloud.alerts`` (whose webhook path
tells the financier). See docs/integrity.md.
"""
