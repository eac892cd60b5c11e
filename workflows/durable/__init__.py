"""The AWS side of the matching workflow: plain Python, no Django.

- ``signing``   Standard Webhooks sign/verify (the console imports it to verify callbacks)
- ``state``     the DynamoDB state store for ``matching-workflow-state``
- ``workflow``  the Lambda durable function (handler ``workflows.durable.workflow.handler``)
- ``api``       the Durable API, a Function URL handler (``workflows.durable.api.handler``)
- ``template.yaml``  the SAM template deploying all of it (devtools/durable_local/, dev only, runs it locally)

See docs/durable-state.md for the state item, the vetting policy and callback delivery.
"""
