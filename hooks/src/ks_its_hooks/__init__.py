"""Hook jobs that bring KubeStellar Inventory and Transport Spaces (ITSes) to ready."""

FIELD_MANAGER = "ks-its-hook"
