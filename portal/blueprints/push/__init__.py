"""The invoice push receiver (``/api/v1/push``): the receipt assistant (收票助手) sends invoices here."""
