// Where the page finds the API. Empty: the same origin that served the page (the local server,
// or one domain that routes /v1/* to API Gateway and the rest to these files).
// devSignIn: false hides the "sign in as any person" form, which only the local server answers.
window.STUDIO_CONFIG = { api: "", devSignIn: true };
