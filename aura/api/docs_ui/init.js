// Starts Swagger UI on Aura's docs page (/api/v1/docs). A file of its own, not an inline script,
// so the page's Content-Security-Policy can allow scripts from this server only ('self').
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: document.body.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No third-party validator badge, and no spec URL taken from the page's own query string.
    validatorUrl: null,
    queryConfigEnabled: false,
  });
});
