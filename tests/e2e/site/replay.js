// The replay test's page controls (the tracker itself is created by app.js).
(function () {
  let rows = 0;
  document.getElementById('add-row').addEventListener('click', () => {
    rows += 1;
    const li = document.createElement('li');
    li.className = 'row';
    li.textContent = 'Row ' + 'abcdefghij'[rows % 10];
    document.getElementById('rows').appendChild(li);
  });
})();
