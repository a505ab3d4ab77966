// edgegate web UI: live updates over one websocket per page, the message
// inspector, the dashboard chart and confirmations. Pages work without it.
"use strict";

(function () {
	const body = document.body;

	// Forms that change something irreversible ask first.
	document.addEventListener("submit", (ev) => {
		const msg = ev.target.getAttribute("data-confirm");
		if (msg && !window.confirm(msg)) {
			ev.preventDefault();
		}
	});

	// The menu starts folded on narrow screens.
	const menu = document.querySelector(".navmenu");
	if (menu && window.matchMedia("(max-width: 800px)").matches) {
		menu.removeAttribute("open");
	}

	const feeds = body.getAttribute("data-live") || "";
	const inspector = document.querySelector("[data-inspector]");
	if (!feeds && !inspector) {
		return;
	}

	const fmtNumber = (n) => (n >= 100 ? Math.round(n).toLocaleString() : (Math.round(n * 10) / 10).toLocaleString());
	const fmtBytes = (n) => {
		const units = ["B", "KiB", "MiB", "GiB"];
		let i = 0;
		while (n >= 1024 && i < units.length - 1) {
			n /= 1024;
			i++;
		}
		return (i === 0 ? Math.round(n) : n.toFixed(1)) + " " + units[i];
	};
	const fmtDuration = (s) => {
		if (s >= 86400) return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
		if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
		if (s >= 60) return Math.floor(s / 60) + "m " + (s % 60) + "s";
		return s + "s";
	};

	// Dashboard chart: the last five minutes of messages per second.
	const chart = document.querySelector("[data-chart]");
	let history = [];
	if (chart) {
		try {
			history = JSON.parse(chart.getAttribute("data-history") || "[]") || [];
		} catch (e) {
			history = [];
		}
	}
	const drawChart = () => {
		if (!chart) return;
		const pts = history.slice(-300);
		let max = 1;
		for (const p of pts) max = Math.max(max, p.msgs_in, p.msgs_out);
		for (const line of chart.querySelectorAll("[data-series]")) {
			const key = line.getAttribute("data-series");
			const start = 300 - pts.length;
			line.setAttribute("points", pts.map((p, i) => (start + i) + "," + (100 - (p[key] / max) * 95).toFixed(1)).join(" "));
		}
		const label = chart.querySelector("[data-chart-max]");
		if (label) label.textContent = "· peak " + fmtNumber(max) + "/s";
	};
	drawChart();

	const setStat = (name, value) => {
		for (const el of document.querySelectorAll('[data-stat="' + name + '"]')) {
			el.textContent = el.getAttribute("data-format") === "bytes" ? fmtBytes(value) + "" : value;
		}
	};

	const onStats = (data) => {
		const p = data.point;
		setStat("clients", p.clients.toLocaleString());
		setStat("msgs_in", fmtNumber(p.msgs_in));
		setStat("msgs_out", fmtNumber(p.msgs_out));
		for (const el of document.querySelectorAll('[data-stat="bytes_in"]')) el.textContent = fmtBytes(p.bytes_in);
		for (const el of document.querySelectorAll('[data-stat="bytes_out"]')) el.textContent = fmtBytes(p.bytes_out);
		setStat("uptime", fmtDuration(p.uptime));
		const alarms = data.alarms || [];
		setStat("health", alarms.length === 0 ? "ok" : alarms.length + (alarms.length === 1 ? " alarm" : " alarms") + " raised");
		const list = document.querySelector("[data-alarms]");
		if (list) {
			list.replaceChildren(...(alarms.length === 0 ? [item("No alarms.", "muted")] : alarms.map((a) => item(a.message, "alarm"))));
		}
		history.push(p);
		if (history.length > 300) history.shift();
		drawChart();
	};

	const item = (text, cls) => {
		const li = document.createElement("li");
		li.textContent = text;
		if (cls) li.className = cls;
		return li;
	};

	const onClient = (ev) => {
		const list = document.querySelector("[data-events]");
		if (!list) return;
		const empty = list.querySelector("[data-empty]");
		if (empty) empty.remove();
		const when = new Date(ev.time).toLocaleTimeString();
		list.prepend(item(when + " " + ev.clientid + " " + ev.event + (ev.address ? " from " + ev.address : ""), ""));
		while (list.children.length > 20) list.lastElementChild.remove();
	};

	const onLog = (line) => {
		const list = document.querySelector("[data-logs]");
		if (!list) return;
		const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
		list.append(item(line.text, "level-" + (line.level || "").toLowerCase()));
		while (list.children.length > 500) list.firstElementChild.remove();
		if (atBottom) list.scrollTop = list.scrollHeight;
	};

	// The message inspector.
	const messages = document.querySelector("[data-messages]");
	const watchStatus = document.querySelector("[data-watch-status]");
	const formatSelect = document.querySelector("[data-payload-format]");
	const showPayload = (m) => {
		const mode = formatSelect ? formatSelect.value : "auto";
		if (mode === "hex") return m.hex;
		if (mode === "text") return m.text !== undefined ? m.text : "(not UTF-8 text; shown as hex) " + m.hex;
		return m.json || (m.text !== undefined ? m.text : m.hex);
	};
	const onMessage = (m) => {
		if (!messages) return;
		const row = document.createElement("tr");
		row.setAttribute("data-testid", "inspected-message");
		const cells = [new Date(m.t).toLocaleTimeString(), m.topic, "QoS " + m.qos + (m.retain ? " · retained" : ""), ""];
		for (const text of cells) {
			const td = document.createElement("td");
			td.textContent = text;
			row.append(td);
		}
		const pre = document.createElement("pre");
		pre.textContent = showPayload(m) + (m.truncated ? " … (" + m.size + " bytes)" : "");
		pre.setAttribute("data-testid", "inspected-payload");
		row.lastElementChild.append(pre);
		messages.prepend(row);
		while (messages.children.length > 200) messages.lastElementChild.remove();
	};

	const liveState = document.querySelector("[data-live-state]");
	let ws = null;
	let retry = 1000;
	const send = (obj) => {
		if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
	};
	const connect = () => {
		const scheme = location.protocol === "https:" ? "wss:" : "ws:";
		ws = new WebSocket(scheme + "//" + location.host + "/live?feeds=" + encodeURIComponent(feeds));
		ws.addEventListener("open", () => {
			retry = 1000;
			if (liveState) liveState.textContent = "live";
			body.setAttribute("data-live-connected", "true");
			if (inspector && inspector.dataset.filter) send({ type: "watch", filter: inspector.dataset.filter });
		});
		ws.addEventListener("message", (ev) => {
			let msg;
			try {
				msg = JSON.parse(ev.data);
			} catch (e) {
				return;
			}
			switch (msg.type) {
				case "stats": onStats(msg.data); break;
				case "client": onClient(msg.data); break;
				case "log": onLog(msg.data); break;
				case "message": onMessage(msg.data); break;
				case "watching":
					if (watchStatus) watchStatus.textContent = msg.data.filter ? "Watching " + msg.data.filter : "Stopped.";
					break;
				case "watch_error":
					if (watchStatus) watchStatus.textContent = msg.data.filter + ": " + msg.data.error;
					break;
				case "skipped":
					if (watchStatus) watchStatus.textContent = "Rate limited: " + msg.data.count + " messages not shown in the last second.";
					break;
			}
		});
		ws.addEventListener("close", (ev) => {
			body.removeAttribute("data-live-connected");
			if (liveState) liveState.textContent = "offline";
			if (ev.code === 1000) return; // the session ended
			setTimeout(connect, retry);
			retry = Math.min(retry * 2, 30000);
		});
	};
	connect();

	if (inspector) {
		inspector.addEventListener("submit", (ev) => {
			ev.preventDefault();
			const submitter = ev.submitter;
			if (submitter && submitter.value === "stop") {
				inspector.dataset.filter = "";
				send({ type: "unwatch" });
				return;
			}
			const filter = inspector.querySelector("[name=filter]").value.trim();
			inspector.dataset.filter = filter;
			if (messages) messages.replaceChildren();
			send({ type: "watch", filter: filter });
		});
	}
})();
