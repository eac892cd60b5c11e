# The console's lists show every time in the staff member's zone and say which: "2026-12-06 21:59:21 UTC+0800".
DATETIME_FORMAT = r"Y-m-d H:i:s \U\T\CO"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i:s"
