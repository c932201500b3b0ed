"""The uplink stage: reports leave the device and come back to pipelines over HTTP.

``push`` sends the local spool to a collector (at-least-once, de-duplicated upstream, nothing
leaves the spool before the collector acknowledges it); ``pull`` is the pipelines' client for
listing and fetching stored reports. Nothing here imports numpy: ``edgeprof push`` runs from cron.
"""
