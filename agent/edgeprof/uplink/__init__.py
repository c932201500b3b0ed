"""The uplink stage: reports leave the device and come back to pipelines over HTTP.

``http`` is the one HTTP client (urllib3: timeouts, bounded retries, a cap on answers, TLS
verified) that everything here and the gate use; ``spool`` pushes the local spool to a collector
(at-least-once, de-duplicated upstream, nothing leaves the spool before the collector
acknowledges it), checking each file with ``envelope`` (msgpack only); ``pull`` is the
pipelines' client for listing and fetching stored reports. Nothing on the push path imports
numpy: ``edgeprof push`` runs from cron.
"""
