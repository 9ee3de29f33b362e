// Stands in for sanitize-html, which the widget manager imports only to sanitize descriptions
// that allow HTML (`description_allow_html`): the app has none, and sanitize-html with its HTML
// and CSS parsers was a quarter of the page's script. A description given here is shown as text.
export default function inlineText(source) {
  const escaped = document.createElement('div');
  escaped.textContent = String(source);
  return escaped.innerHTML;
}
