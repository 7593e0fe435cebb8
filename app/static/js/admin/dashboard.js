// The admin dashboard's live part: draws the 30-day chart with the vendored Chart.js (a classic
// script loaded before this module: window.Chart) from the page's JSON data block, and refreshes
// the figures, the chart and the table from /admin/stats.json every 30 s while the page is
// visible, and on "Refresh". Text only: every value goes in with textContent.

const REFRESH_MS = 30_000;
const SERIES = ["messages", "active_users", "signups"];
// Each series' colour on a light and on a dark page (chosen from the page's own background).
const COLOURS = {
  light: { messages: "#1a7f37", active_users: "#1f5fbf", signups: "#b3470b" },
  dark: { messages: "#4ade80", active_users: "#7cb4ff", signups: "#fdba74" },
};

const block = document.getElementById("dashboard-data");
const canvas = document.getElementById("activity-chart");
const initial = JSON.parse(block.textContent);

function rgb(colour) {
  const parts = (colour.match(/[\d.]+/g) || []).map(Number);
  return { r: parts[0] || 0, g: parts[1] || 0, b: parts[2] || 0, a: parts.length > 3 ? parts[3] : 1 };
}

function luminance({ r, g, b }) {
  const channel = (value) => {
    const c = value / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

/** The first opaque background from the chart up, and the text colour there. */
function pageColours() {
  let node = canvas.parentElement;
  let background = null;
  while (node && !background) {
    const colour = rgb(getComputedStyle(node).backgroundColor);
    if (colour.a > 0) background = colour;
    node = node.parentElement;
  }
  background = background || { r: 255, g: 255, b: 255, a: 1 };
  const text = getComputedStyle(canvas.parentElement).color;
  const { r, g, b } = rgb(text);
  return {
    scheme: luminance(background) < 0.2 ? "dark" : "light",
    text,
    grid: `rgba(${r}, ${g}, ${b}, 0.15)`,
  };
}

function datasets(data, colours) {
  return SERIES.map((name) => {
    const colour = COLOURS[colours.scheme][name];
    const bars = name === "messages";
    return {
      label: initial.labels[name],
      data: data.series[name],
      type: bars ? "bar" : "line",
      yAxisID: bars ? "y" : "people",
      order: bars ? 2 : 1,
      backgroundColor: bars ? `${colour}b3` : colour,
      borderColor: colour,
      borderWidth: bars ? 0 : 2,
      pointRadius: bars ? 0 : 2,
      pointHoverRadius: 4,
      tension: 0.2,
    };
  });
}

function theme(options, colours) {
  options.color = colours.text;
  for (const axis of Object.values(options.scales)) {
    axis.ticks.color = colours.text;
    axis.grid.color = colours.grid;
    axis.title.color = colours.text;
  }
  options.plugins.legend.labels.color = colours.text;
}

function axis(title, position, grid = true) {
  return {
    position,
    beginAtZero: true,
    title: { display: true, text: title },
    ticks: { precision: 0 },
    grid: { drawOnChartArea: grid },
  };
}

const colours = pageColours();
const options = {
  responsive: true,
  maintainAspectRatio: false,
  animation: false,
  interaction: { mode: "index", intersect: false },
  plugins: {
    // Messages first, as in the table (the bars are drawn behind the lines: `order`).
    legend: { position: "bottom", labels: { boxWidth: 12, sort: (a, b) => a.datasetIndex - b.datasetIndex } },
    tooltip: { enabled: true, itemSort: (a, b) => a.datasetIndex - b.datasetIndex },
  },
  scales: {
    x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 }, grid: {}, title: { display: false } },
    y: axis(initial.text.messages_axis, "left"),
    people: axis(initial.text.people_axis, "right", false),
  },
};
theme(options, colours);
const chart = new window.Chart(canvas, {
  data: { labels: initial.days.map((day) => day.slice(5)), datasets: datasets(initial, colours) },
  options,
});

function recolour() {
  const now = pageColours();
  theme(chart.options, now);
  chart.data.datasets.forEach((dataset, index) => {
    const colour = COLOURS[now.scheme][SERIES[index]];
    dataset.borderColor = colour;
    dataset.backgroundColor = SERIES[index] === "messages" ? `${colour}b3` : colour;
  });
  chart.update();
}
window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", recolour);

function cell(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function show(data) {
  for (const [key, value] of Object.entries(data.figures)) {
    const node = document.querySelector(`[data-stat="${key}"]`);
    if (node) node.textContent = String(value);
  }
  document.querySelector('[data-dashboard="as-of"]').textContent = initial.text.as_of.replace(
    "{time}",
    data.generated_at.slice(11, 19),
  );
  chart.data.labels = data.days.map((day) => day.slice(5));
  SERIES.forEach((name, index) => {
    chart.data.datasets[index].data = data.series[name];
  });
  chart.update();
  const body = document.querySelector('[data-table="activity"] tbody');
  const rows = data.days
    .map((day, index) => {
      const row = document.createElement("tr");
      row.dataset.day = day;
      row.append(cell("th", day, { scope: "row" }));
      for (const name of SERIES) {
        row.append(cell("td", data.series[name][index], { class: "text-right", "data-series": name }));
      }
      return row;
    })
    .reverse();
  body.replaceChildren(...rows);
}

const error = document.querySelector('[data-dashboard="error"]');
let inFlight = false;

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const response = await fetch(initial.stats_url, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      redirect: "error",
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    show(await response.json());
    error.textContent = "";
  } catch (problem) {
    error.textContent = initial.text.refresh_failed.replace("{reason}", problem.message || String(problem));
  } finally {
    inFlight = false;
  }
}

document.querySelector('[data-action="refresh-stats"]').addEventListener("click", refresh);
setInterval(() => {
  if (!document.hidden) refresh();
}, REFRESH_MS);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});
