"""Hook jobs that bring KubeStellar Inventory and Transport Spaces (ITSes) to ready."""

from importlib.metadata import version

FIELD_MANAGER = "ks-its-hook"
# Sent with every request, so audit logs tell the hook apart from clusteradm and controllers.
USER_AGENT = f"ks-its-hook/{version('ks-its-hooks')}"
