// Entry of the spectrum webview (built to dist/webview/spectrum.js, plus spectrum.css from uPlot's stylesheet).
import {
  provideVSCodeDesignSystem, vsCodeButton, vsCodeCheckbox, vsCodeDropdown, vsCodeOption, vsCodeProgressRing,
} from '@vscode/webview-ui-toolkit';
import 'uplot/dist/uPlot.min.css';
import { App } from './spectrum/app';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeCheckbox(), vsCodeDropdown(), vsCodeOption(), vsCodeProgressRing());
new App(document.getElementById('app')!);
