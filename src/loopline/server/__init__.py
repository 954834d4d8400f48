"""The team server (`loopline server`): the services as a versioned REST API."""
