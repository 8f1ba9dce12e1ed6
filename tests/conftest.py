"""Shared fixtures: each start real services on free loopback ports and stop them by PID."""
import signal

pytest_plugins = ["tests.fixtures.devcluster", "tests.fixtures.services"]

# A test runner started in the background (`cmd &` in a script) ignores SIGINT, and every `br` it
# starts would inherit that and ignore the Ctrl-C the interruption tests send. A caught signal is
# reset to its default across exec, an ignored one is not: catch it here, as a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
