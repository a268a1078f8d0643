"""The scan desk (扫描工作台): a scanner's queue and opening a bill by its number."""
