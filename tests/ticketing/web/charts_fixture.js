/* For test_charts_browser.py: collects the page's Content-Security-Policy violations in
 * window.kefuViolations. A file, loaded first: the CSP allows no inline script. */
window.kefuViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.kefuViolations.push([event.violatedDirective, event.blockedURI, event.sample].join(" "));
});
