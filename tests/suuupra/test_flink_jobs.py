"""How a job's failure is told in one line, from Flink's exception history."""

from __future__ import annotations

from suuupra.flink_jobs import failure_summary

REGISTRY_DOWN = """org.apache.flink.runtime.JobException: Recovery is suppressed by FixedDelayRestartBackoffTimeStrategy
\tat org.apache.flink.runtime.executiongraph.failover.ExecutionFailureHandler.handleFailure(Handler.java:219)
Caused by: com.suuupra.flink.avro.RegistryLookup$RegistryUnavailableException: schema registry failed while fetching \
schema id 7 from http://127.0.0.1:18081
\tat com.suuupra.flink.avro.RegistryLookup.fetch(RegistryLookup.java:60)
Caused by: java.net.ConnectException
\tat java.net.http/jdk.internal.net.http.HttpClientImpl.send(HttpClientImpl.java:951)
Caused by: java.nio.channels.ClosedChannelException
"""


def test_the_innermost_cause_that_says_something_is_told_with_the_bare_one_under_it() -> None:
    line = failure_summary({"stacktrace": REGISTRY_DOWN, "taskName": "Source: sequenced"})
    assert line == (
        "com.suuupra.flink.avro.RegistryLookup$RegistryUnavailableException: schema registry failed while fetching "
        "schema id 7 from http://127.0.0.1:18081 (from java.nio.channels.ClosedChannelException) (in Source: sequenced)"
    )


def test_a_failure_without_causes_is_its_first_line() -> None:
    assert failure_summary({"stacktrace": "java.lang.IllegalStateException: boom\n\tat x.y(Z.java:1)"}) == (
        "java.lang.IllegalStateException: boom"
    )
    assert failure_summary({"exceptionName": "java.lang.OutOfMemoryError"}) == "java.lang.OutOfMemoryError"
