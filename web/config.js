// Where the page finds the API. Empty: the same origin that served the page (the local server,
// or one domain that routes /v1/* to API Gateway and the rest to these files).
window.STUDIO_CONFIG = { api: "" };
