// Starts the OpenAPI viewer named by the page (web/apidocs.py): Swagger UI or ReDoc, both served from /static,
// with the document's URL from the container's data-spec-url. No inline script: the pages run under DOCS_CSP.
(function () {
  "use strict";
  var swagger = document.querySelector("[data-viewer=swagger]");
  if (swagger && window.SwaggerUIBundle) {
    window.ui = window.SwaggerUIBundle({
      url: swagger.dataset.specUrl,
      dom_id: "#swagger-container",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      validatorUrl: null, // no badge from an online validator: nothing leaves this origin
      presets: [window.SwaggerUIBundle.presets.apis],
    });
  }
  var redoc = document.querySelector("[data-viewer=redoc]");
  if (redoc && window.Redoc) {
    window.Redoc.init(redoc.dataset.specUrl, {}, redoc);
  }
})();
