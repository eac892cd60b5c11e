"""Clients for SnowTrace's services that feed the console its candidates.

One module per service (users, knowledge, resorts), each the only place that knows its wire
format, on one shared transport (`http.py`: a `requests.Session` with timeouts and urllib3
`Retry`, backing off on 5xx, 429 and timeouts). They feed the domain (`matching/candidates/sync.py`),
so they live in it and import nothing from the engines.
"""
