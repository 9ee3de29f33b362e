// The drawing app's page script: connects to the kernel Voilà started for this page and shows
// each cell's widget output in its place. One bundle instead of Voilà's JupyterLab front end:
// Jupyter widgets 8 (base and the controls the app uses), ipycanvas, and the kernel connection of
// @jupyterlab/services, nothing else. The page parses and runs this script on every load, so it
// takes only the widget classes the app's kernel creates (`CONTROLS`) and the kernel connection's
// own modules, not the packages' whole indexes (1.0 MiB before, most of a load's script time).
import * as base from '@jupyter-widgets/base';
import { ManagerBase } from '@jupyter-widgets/base-manager';
import { HBoxModel, HBoxView, VBoxModel, VBoxView } from '@jupyter-widgets/controls/lib/widget_box';
import { ButtonModel, ButtonStyleModel, ButtonView } from '@jupyter-widgets/controls/lib/widget_button';
import { ImageModel, ImageView } from '@jupyter-widgets/controls/lib/widget_image';
import {
  ToggleButtonsModel,
  ToggleButtonsStyleModel,
  ToggleButtonsView,
} from '@jupyter-widgets/controls/lib/widget_selection';
import { HTMLModel, HTMLStyleModel, HTMLView } from '@jupyter-widgets/controls/lib/widget_string';
import { KernelConnection } from '@jupyterlab/services/lib/kernel/default';
import { ServerConnection } from '@jupyterlab/services/lib/serverconnection';
import { Widget } from '@lumino/widgets';
import ipycanvas from 'ipycanvas-module';

// The JupyterLab light theme's variables come with the page (the template); its colour palette,
// the widgets' styles and the button icons come from here.
import '@jupyter-widgets/controls/css/materialcolors.css';
import '@jupyter-widgets/controls/css/widgets-base.css';
import './icons.css';
import './page.css';

const WIDGET_MIMETYPE = 'application/vnd.jupyter.widget-view+json';
const OUTPUT_MIMETYPE = 'application/vnd.voila.cell-output+json';

// The controls the app's widgets are made of (doodle/app/dashboard_widgets.py): a widget of
// another kind needs its classes here.
const CONTROLS = {
  ButtonModel,
  ButtonStyleModel,
  ButtonView,
  HBoxModel,
  HBoxView,
  HTMLModel,
  HTMLStyleModel,
  HTMLView,
  ImageModel,
  ImageView,
  ToggleButtonsModel,
  ToggleButtonsStyleModel,
  ToggleButtonsView,
  VBoxModel,
  VBoxView,
};

const MODULES = {
  '@jupyter-widgets/base': base,
  '@jupyter-widgets/controls': CONTROLS,
  ipycanvas,
};

/** Widget manager whose comms go over the page's kernel connection. */
class PageWidgetManager extends ManagerBase {
  constructor(kernel) {
    super();
    this.kernel = kernel;
    kernel.registerCommTarget(this.comm_target_name, async (comm, msg) => {
      await this.handle_comm_open(new base.shims.services.Comm(comm), msg);
    });
  }

  loadClass(className, moduleName, moduleVersion) {
    const module = MODULES[moduleName];
    if (module === undefined) {
      return Promise.reject(new Error(`No widget module ${moduleName}@${moduleVersion} on this page`));
    }
    if (module[className] === undefined) {
      return Promise.reject(
        new Error(`No class ${className} in ${moduleName}@${moduleVersion} on this page (dashboard-frontend/src/index.js)`),
      );
    }
    return Promise.resolve(module[className]);
  }

  async _create_comm(targetName, modelId, data, metadata, buffers) {
    const comm = this.kernel.createComm(targetName, modelId);
    if (data || metadata) {
      comm.open(data, metadata, buffers);
    }
    return new base.shims.services.Comm(comm);
  }

  async _get_comm_info() {
    const reply = await this.kernel.requestCommInfo({ target_name: this.comm_target_name });
    return reply.content.status === 'ok' ? reply.content.comms : {};
  }

  async loadFromKernel() {
    await this._loadFromKernel();
  }
}

function pageConfig() {
  const element = document.getElementById('jupyter-config-data');
  return JSON.parse(element.textContent);
}

function cookie(name) {
  const match = document.cookie.match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
  return match ? decodeURIComponent(match[1]) : '';
}

/** Stop this page's kernel when the page goes away (Voilà's shutdown handler). */
function shutdownOnUnload(baseUrl, kernelId) {
  window.addEventListener('beforeunload', () => {
    const url = `${baseUrl}voila/api/shutdown/${encodeURIComponent(kernelId)}?_xsrf=${encodeURIComponent(cookie('_xsrf'))}`;
    navigator.sendBeacon(url);
  });
}

function showPlain(host, text, className) {
  const pre = document.createElement('pre');
  pre.className = className;
  pre.textContent = text;
  host.appendChild(pre);
}

/** Put one cell output in ``host``: a widget view, HTML, or text. */
async function renderOutput(manager, output, host) {
  const data = output.data || {};
  if (data[WIDGET_MIMETYPE]) {
    const model = await manager.get_model(data[WIDGET_MIMETYPE].model_id);
    const view = await manager.create_view(model);
    Widget.attach(view.luminoWidget, host);
  } else if (data['text/html']) {
    const div = document.createElement('div');
    div.className = 'doodle-output-html';
    div.innerHTML = [].concat(data['text/html']).join('');
    host.appendChild(div);
  } else if (output.output_type === 'stream') {
    showPlain(host, [].concat(output.text).join(''), `doodle-output-stream doodle-output-${output.name}`);
  } else if (output.output_type === 'error') {
    const traceback = (output.traceback || []).join('\n').replace(/\x1b\[[0-9;]*m/g, '');
    showPlain(host, traceback || `${output.ename}: ${output.evalue}`, 'doodle-output-error');
  } else if (data['text/plain']) {
    showPlain(host, [].concat(data['text/plain']).join(''), 'doodle-output-text');
  }
}

// Marks on the page's timeline (performance.getEntriesByType('mark')), which the benchmarks read
// to say where a load's time goes: the bundle's code has run (its first line marks
// 'doodle:script', see build.mjs), the kernel answered, the widgets' state arrived, every output
// is on the page.
const MARKS = { start: 'doodle:start', connected: 'doodle:connected', state: 'doodle:state', shown: 'doodle:shown' };

async function main() {
  performance.mark(MARKS.start);
  const config = pageConfig();
  const baseUrl = config.baseUrl;
  shutdownOnUnload(baseUrl, config.kernelId);
  const serverSettings = ServerConnection.makeSettings({ baseUrl });
  const kernel = new KernelConnection({
    model: { id: config.kernelId, name: 'python3' },
    serverSettings,
    handleComms: true,
  });
  kernel.connectionStatusChanged.connect((_, status) => {
    if (status === 'connected' && performance.getEntriesByName(MARKS.connected).length === 0) {
      performance.mark(MARKS.connected);
    }
  });
  const manager = new PageWidgetManager(kernel);
  await manager.loadFromKernel();
  performance.mark(MARKS.state);
  const scripts = Array.from(document.querySelectorAll(`script[type="${OUTPUT_MIMETYPE}"]`));
  await Promise.all(scripts.map(async (script) => {
    const host = document.createElement('div');
    host.className = 'doodle-output';
    script.replaceWith(host);
    try {
      await renderOutput(manager, JSON.parse(script.textContent), host);
    } catch (error) {
      console.error('could not show an output', error);
      showPlain(host, String(error), 'doodle-output-error');
    }
  }));
  performance.mark(MARKS.shown);
}

main().catch((error) => console.error('the page could not connect to its kernel', error));
