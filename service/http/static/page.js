// The page's behaviour: API key in session storage, upload progress, sorting, paging,
// copying and downloads. No inline scripts anywhere (the Content-Security-Policy forbids them);
// all text is set with textContent, never parsed as HTML.
(function () {
  "use strict";

  var KEY_STORE = "discourse-api-key";
  var body = document.body;
  var keysRequired = body.dataset.keysRequired === "true";

  function storedKey() {
    try {
      return window.sessionStorage.getItem(KEY_STORE) || "";
    } catch (e) {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) {
        window.sessionStorage.setItem(KEY_STORE, key);
      } else {
        window.sessionStorage.removeItem(KEY_STORE);
      }
    } catch (e) {
      // Storage disabled: the key then lasts until the page is reloaded.
    }
    memoryKey = key;
  }

  var memoryKey = storedKey();

  function setText(element, text) {
    if (element) {
      element.textContent = text;
    }
  }

  // --- API key ---------------------------------------------------------------------------------
  // The key travels as the API expects it: the X-API-Key header of each request the page makes.
  body.addEventListener("htmx:configRequest", function (event) {
    if (memoryKey) {
      event.detail.headers["X-API-Key"] = memoryKey;
    }
  });

  function keyStatus(text) {
    setText(document.getElementById("key-status"), text);
  }

  function setUpKeyForm() {
    var form = document.getElementById("key-form");
    if (!form) {
      return;
    }
    var input = document.getElementById("api-key");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      storeKey(input.value.trim());
      input.value = "";
      keyStatus("Checking the key…");
      htmx.trigger(body, "discourse:key");
    });
    document.getElementById("key-forget").addEventListener("click", function () {
      storeKey("");
      keyStatus("No key: enter one to score texts.");
      input.focus();
    });
    if (memoryKey) {
      keyStatus("Checking the key kept for this tab…");
      htmx.trigger(body, "discourse:key");
    } else {
      keyStatus("No key yet: enter one to score texts.");
    }
  }

  // The reference pickers load with the key; a refused key is reported by the key box, and the
  // picker keeps its plain reference-id field.
  body.addEventListener("htmx:beforeSwap", function (event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (!source || !source.classList || !source.classList.contains("reference-picker")) {
      return;
    }
    var status = event.detail.xhr.status;
    if (status >= 400) {
      event.detail.shouldSwap = false;
      if (status === 401) {
        keyStatus(memoryKey ? "This key was refused: the API key is not valid." : "Enter an API key.");
      } else {
        keyStatus("The reference list could not be loaded (HTTP " + status + ").");
      }
    } else if (source.id === "one-picker") {
      keyStatus("Key accepted; it is kept for this browser tab only.");
    }
  });

  // --- upload progress -------------------------------------------------------------------------
  var uploadDone = false;

  function progressParts() {
    return {
      box: document.getElementById("many-progress-box"),
      bar: document.getElementById("many-progress"),
      text: document.getElementById("many-progress-text"),
    };
  }

  body.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id !== "many-form") {
      return;
    }
    var parts = progressParts();
    // Over the limit the service refuses the upload whole (413) without reading it, and a browser
    // still sending sees a broken connection, not the answer: say so before sending anything.
    var input = document.getElementById("many-file");
    var limit = Number(input.dataset.maxBytes);
    if (input.files.length && limit && input.files[0].size > limit) {
      event.preventDefault();
      parts.box.hidden = false;
      parts.box.dataset.state = "failed";
      parts.bar.setAttribute("value", "0");
      setText(
        parts.text,
        "Not sent: the file has " + input.files[0].size.toLocaleString("en") + " bytes, over the limit of " +
          limit.toLocaleString("en") + " bytes. Split it, or use the command line (discourse score)."
      );
      return;
    }
    uploadDone = false;
    parts.box.hidden = false;
    parts.bar.setAttribute("value", "0");
    parts.box.dataset.state = "uploading";
    setText(parts.text, "Uploading…");
  });

  body.addEventListener("htmx:xhr:progress", function (event) {
    if (event.detail.elt.id !== "many-form" || uploadDone || !event.detail.lengthComputable) {
      return;
    }
    var parts = progressParts();
    var percent = Math.round((100 * event.detail.loaded) / event.detail.total);
    parts.bar.setAttribute("value", String(percent));
    setText(parts.text, "Uploading: " + percent + "%");
    if (event.detail.loaded >= event.detail.total) {
      // The upload is complete; the server now scores the rows, for a time the page cannot measure.
      uploadDone = true;
      parts.bar.removeAttribute("value");
      parts.box.dataset.state = "scoring";
      setText(parts.text, "Uploaded; scoring…");
    }
  });

  body.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.id !== "many-form") {
      return;
    }
    var parts = progressParts();
    var xhr = event.detail.xhr;
    // 4xx answers are swapped in (they explain what is wrong), so htmx counts them as successful.
    if (xhr && xhr.status >= 200 && xhr.status < 300) {
      parts.bar.setAttribute("value", "100");
      parts.box.dataset.state = "done";
      setText(parts.text, "Done.");
    } else {
      parts.bar.setAttribute("value", "0");
      parts.box.dataset.state = "failed";
      setText(parts.text, xhr && xhr.status ? "Failed (HTTP " + xhr.status + "): see the message below." : "Failed: the service could not be reached.");
    }
  });

  body.addEventListener("htmx:sendError", function (event) {
    var target = document.getElementById(event.detail.elt.id === "many-form" ? "many-result" : "one-result");
    if (target && (event.detail.elt.id === "many-form" || event.detail.elt.id === "one-form")) {
      var message = document.createElement("div");
      message.className = "error";
      message.setAttribute("role", "alert");
      message.textContent = "The service could not be reached, or it closed the connection. Nothing was scored; try again.";
      target.replaceChildren(message);
    }
  });

  // --- results: focus, sorting, paging, copying, downloads -------------------------------------
  body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target.id === "one-result" || target.id === "many-result") {
      var heading = target.querySelector("[tabindex='-1'], .error");
      if (heading) {
        heading.focus();
      }
    }
  });

  function sortTable(button) {
    var th = button.closest("th");
    var table = th.closest("table");
    var column = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var numeric = button.dataset.sort === "number";
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column];
      var y = b.cells[column];
      var order;
      if (numeric) {
        order = parseFloat(x.dataset.value) - parseFloat(y.dataset.value);
      } else {
        order = x.textContent.trim().localeCompare(y.textContent.trim());
      }
      return ascending ? order : -order;
    });
    rows.forEach(function (row) {
      tbody.appendChild(row);
    });
    Array.prototype.forEach.call(th.parentNode.children, function (cell) {
      cell.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function showPage(nav, page) {
    var table = nav.parentNode.querySelector("table[data-paged]");
    var count = table.tBodies.length;
    page = Math.min(Math.max(page, 1), count);
    Array.prototype.forEach.call(table.tBodies, function (tbody, index) {
      tbody.hidden = index + 1 !== page;
    });
    nav.dataset.page = String(page);
    setText(nav.querySelector(".page-status"), "Page " + page + " of " + count);
    nav.querySelector("[data-page-step='-1']").disabled = page === 1;
    nav.querySelector("[data-page-step='1']").disabled = page === count;
  }

  function setUpPagers(root) {
    Array.prototype.forEach.call(root.querySelectorAll("nav.pager"), function (nav) {
      if (Number(nav.dataset.pages) > 1) {
        nav.hidden = false;
        showPage(nav, 1);
      }
    });
  }

  function copyText(button) {
    var source = document.getElementById(button.dataset.copy);
    var status = button.parentNode.querySelector(".copy-status");
    var text = source.textContent;
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var copied = false;
      try {
        copied = document.execCommand("copy");
      } catch (e) {
        copied = false;
      }
      setText(status, copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () {
          setText(status, "Copied.");
        },
        fallback
      );
    } else {
      fallback();
    }
  }

  function download(button) {
    var data = JSON.parse(document.getElementById("many-downloads").textContent);
    var kind = button.dataset.download;
    var type = kind === "csv" ? "text/csv;charset=utf-8" : "application/x-ndjson;charset=utf-8"; // jsonl, errors
    var url = URL.createObjectURL(new Blob([data[kind]], { type: type }));
    var link = document.createElement("a");
    link.href = url;
    link.download = button.dataset.filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(function () {
      URL.revokeObjectURL(url);
    }, 60000);
  }

  body.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) {
      return;
    }
    if (button.dataset.sort) {
      sortTable(button);
    } else if (button.dataset.pageStep) {
      var nav = button.closest("nav.pager");
      showPage(nav, Number(nav.dataset.page || "1") + Number(button.dataset.pageStep));
    } else if (button.dataset.copy) {
      copyText(button);
    } else if (button.dataset.download) {
      download(button);
    }
  });

  // Passages of a long reference: show the first highlight inside its scrolling box.
  function revealHighlights(root) {
    Array.prototype.forEach.call(root.querySelectorAll(".passage-text"), function (box) {
      var mark = box.querySelector("mark");
      if (mark) {
        box.scrollTop = Math.max(0, mark.offsetTop - box.offsetTop - 24);
      }
    });
  }

  htmx.onLoad(function (element) {
    setUpPagers(element);
    revealHighlights(element);
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (keysRequired) {
      setUpKeyForm();
    }
  });
})();
