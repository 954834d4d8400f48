"""Remote mode: the service interfaces over HTTP to a `loopline server`, one module per
service, bundled as `RemoteServices`."""
