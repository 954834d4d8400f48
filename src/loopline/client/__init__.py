"""Remote mode: the services' interface over HTTP to a `loopline server`."""
