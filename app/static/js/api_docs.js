// /api/docs: Swagger UI (the vendored bundle sets window.SwaggerUIBundle) on Parley's own
// generated document. Everything stays on this server: no validator badge, no CDN. "Try it
// out" sends same-origin requests, so the client API's calls carry this browser's session; a
// server API key typed into "Authorize" is kept in this page's memory only.
const root = document.getElementById("swagger-ui");

window.SwaggerUIBundle({
  url: root.dataset.url,
  domNode: root,
  deepLinking: true,
  // The default badge would send the document to validator.swagger.io.
  validatorUrl: null,
  docExpansion: "list",
  persistAuthorization: false,
});
