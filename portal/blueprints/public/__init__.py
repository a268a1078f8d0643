"""Pages reached through signed links, without an account: view (影像调阅) and submitter upload."""
