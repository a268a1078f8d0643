"""Bills (单据): the bill list, the bill page with its images and invoices, image assets."""
