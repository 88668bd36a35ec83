"""What Daraja offers for trusting a callback: nothing signed, so a path secret, a source
allowlist and a confirming status query (see the Daraja reference's security facts)."""

from __future__ import annotations

# The list integrators commonly copy; not on an official Safaricom page, so it is only
# the default a merchant can switch on, and editable (malipo merchant callbacks …).
SAFARICOM_CALLBACK_IPS = (
    "196.201.214.200",
    "196.201.214.206",
    "196.201.213.114",
    "196.201.214.207",
    "196.201.214.208",
    "196.201.213.44",
    "196.201.212.127",
    "196.201.212.138",
    "196.201.212.129",
    "196.201.212.136",
    "196.201.212.74",
    "196.201.212.69",
)
