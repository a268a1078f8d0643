"""``/help/``: the operations manual (操作手册) and the page header's 帮助 link."""
