"""MLflow's REST API on the team server, so that an unchanged MLflow client logs to loopline.

Point it there with `MLFLOW_TRACKING_URI=http://host:port` and a loopline token in
`MLFLOW_TRACKING_TOKEN`. Every request becomes a call of loopline's services, acting as the
token's owner: what MLflow logs is an ordinary loopline run, artifact or model version, with
roles and the audit trail as for every other call. Errors use MLflow's format and codes.
"""
