"""Reconciliation: does the ledger agree with the gateways? (See workers/reconcile.py.)"""
