"""The Galaxy plug-in script shipped with the portal (IronPython, run inside the ERP, never imported here)."""
